# Counterfactual explanations (pathattn explain): each slide with the checkpoint of the fold that tested it;
# HIPPO greedy search, top-attention vs top-effect vs random removals, the annotated region when the study has
# annotations, and paired tests across the cohort. Part of `all` (and of the report) with explain.activate;
# otherwise a target of its own: snakemake ... explain


rule explain:
    input:
        run=LAYOUT.train_predictions,
        features=every_slide(LAYOUT.features),
        samples=SAMPLE_SHEET,
    output:
        summary=LAYOUT.explain_summary,
        records=every_slide(LAYOUT.explanation),
    params:
        run=LAYOUT.stage("train"),
        features=LAYOUT.stage("features"),
        out=LAYOUT.stage("explain"),
        annotations=ANNOTATION_ARGS,
        device=config["explain"]["device"],
        extra=config["explain"]["extra"],
    log:
        LAYOUT.log("explain"),
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/pathattn.yaml"
    shell:
        "pathattn explain --run {params.run} --features {params.features} --samples {input.samples} "
        "{params.annotations} --out {params.out} --device {params.device} {params.extra} > {log} 2>&1"
