# Image classifiers on the slices of the volume tiling (pathattn classify fit): one job per named run of
# classify.runs (e.g. ResNet-18 with a patient-level and a slice-level split, MEDUSA, its ablation), each a
# cross-validation into classify/<run>/ with its per-fold checkpoints, out-of-fold predictions and metrics with
# patient-bootstrap intervals. Slices and their labels are cut from the studies by the tiling's records.


rule classify:
    input:
        coords=every_slide(LAYOUT.coords),
        samples=SAMPLE_SHEET,
        config=lambda wildcards: CLASSIFY_CONFIGS[wildcards.run],
    output:
        metrics=report(
            LAYOUT.classify_metrics(),
            caption="../report/classify.rst",
            category="Image classifiers",
            labels={"run": "{run}"},
        ),
        predictions=LAYOUT.classify_run() / "predictions.csv",
        splits=LAYOUT.classify_run() / "splits.json",
    params:
        tiles=LAYOUT.stage("tiles"),
        out=lambda wildcards: LAYOUT.classify_run(wildcards.run),
        extra=classify_extra,
    log:
        LAYOUT.log("classify", RUN),
    threads: config["classify"]["threads"]
    resources:
        mem_mb=16000,
        runtime=480,
    conda:
        "../envs/pathattn.yaml"
    shell:
        # --overwrite: a re-run replaces the earlier run as a whole, once the new one has finished
        "pathattn classify fit --config {input.config} --tiles {params.tiles} --samples {input.samples} "
        "--out {params.out} --overwrite {params.extra} > {log} 2>&1"
