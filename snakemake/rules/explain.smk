# Counterfactual explanations (pathattn explain): each slide with the checkpoint of the fold that tested it;
# HIPPO greedy search, top-attention vs top-effect vs random removals, the annotated region when the study has
# annotations, and paired tests across the cohort. Target: snakemake ... explain


rule explain:
    input:
        run=f"{RESULTS}/train/predictions.csv",
        features=expand(f"{RESULTS}/features/h5_files/{{slide_id}}.h5", slide_id=SLIDE_IDS),
        samples=SAMPLE_SHEET,
    output:
        summary=f"{RESULTS}/explain/summary.csv",
        records=expand(f"{RESULTS}/explain/slides/{{slide_id}}.json", slide_id=SLIDE_IDS),
    params:
        run=folder_of("input", "run"),
        features=folder_of("input", "features", 2),
        out=folder_of("output", "summary"),
        annotations=f"--annotations {ANNOTATIONS}" if ANNOTATIONS else "",
        device=config.get("explain", {}).get("device", "cpu"),
        extra=config.get("explain", {}).get("extra", ""),
    log:
        f"{RESULTS}/logs/explain/cohort.log",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/pathattn.yaml"
    shell:
        "pathattn explain --run {params.run} --features {params.features} --samples {input.samples} "
        "{params.annotations} --out {params.out} --device {params.device} {params.extra} > {log} 2>&1"
