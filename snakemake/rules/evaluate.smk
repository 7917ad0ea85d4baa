# Weakly supervised localization of the out-of-fold attention (pathattn evaluate wsol): score rasters against
# the tumor annotations, the threshold and heatmap settings chosen on held-out annotated slides, the others
# scored once, beside a uniform and a few-shot baseline. Needs the study's annotations. Target: snakemake ... evaluate

if ANNOTATIONS:

    rule evaluate:
        input:
            attention=expand(f"{RESULTS}/predict/attention/{{slide_id}}.h5", slide_id=SLIDE_IDS),
            tissue=expand(f"{RESULTS}/tiles/tissue/{{slide_id}}.geojson", slide_id=SLIDE_IDS),
            features=expand(f"{RESULTS}/features/h5_files/{{slide_id}}.h5", slide_id=SLIDE_IDS),
            config=repo_file("configs/evaluate/wsol.yaml", "evaluate"),
        output:
            summary=report(f"{RESULTS}/evaluate/summary.csv", caption="../report/wsol.rst", category="Localization"),
            metrics=f"{RESULTS}/evaluate/metrics.json",
            curves=report(f"{RESULTS}/evaluate/pr_curves.png", caption="../report/wsol.rst", category="Localization"),
        params:
            scores=folder_of("input", "attention", 2),
            tiles=folder_of("input", "tissue", 2),
            features=folder_of("input", "features", 2),
            out=folder_of("output", "summary"),
            annotations=ANNOTATIONS,
        log:
            f"{RESULTS}/logs/evaluate/cohort.log",
        threads: 1
        resources:
            mem_mb=8000,
            runtime=60,
        conda:
            "../envs/pathattn.yaml"
        shell:
            "pathattn evaluate wsol --config {input.config} --scores {params.scores} --annotations {params.annotations} "
            "--tiles {params.tiles} --features {params.features} --out {params.out} > {log} 2>&1"
