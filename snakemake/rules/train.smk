# Patient-level cross-validation on every slide of the sample sheet: one job for the cohort.


rule train:
    input:
        features=every_slide(LAYOUT.features),
        samples=SAMPLE_SHEET,
        configs=TRAIN_CONFIGS,
    output:
        predictions=report(
            LAYOUT.train_predictions, caption="../report/train_predictions.rst", category="Training"
        ),
        metrics=report(LAYOUT.train_metrics, caption="../report/metrics.rst", category="Training"),
        splits=LAYOUT.train_splits,
    params:
        configs=lambda wildcards, input: config_args(input.configs),
        features=LAYOUT.stage("features"),
        out=LAYOUT.stage("train"),
        task=TASK,
        extra=config["train"]["extra"],
    log:
        LAYOUT.log("train"),
    threads: config["train"]["threads"]
    resources:
        mem_mb=16000,
        runtime=240,
    conda:
        "../envs/pathattn.yaml"
    shell:
        # --overwrite: a re-run replaces the earlier run as a whole, once the new one has finished
        "pathattn train {params.configs} --samples {input.samples} --features {params.features} "
        "--out {params.out} --task {params.task} --overwrite {params.extra} > {log} 2>&1"
