# Patient-level cross-validation on every slide of the sample sheet: one job for the cohort.


rule train:
    input:
        features=expand(f"{RESULTS}/features/h5_files/{{slide_id}}.h5", slide_id=SLIDE_IDS),
        samples=SAMPLE_SHEET,
        configs=TRAIN_CONFIGS,
    output:
        predictions=report(
            f"{RESULTS}/train/predictions.csv",
            caption="../report/train_predictions.rst",
            category="Training",
        ),
        metrics=report(f"{RESULTS}/train/metrics.json", caption="../report/metrics.rst", category="Training"),
        splits=f"{RESULTS}/train/splits.json",
    params:
        configs=lambda wildcards, input: config_args(input.configs),
        features=folder_of("input", "features", 2),
        out=folder_of("output", "metrics"),
        task=TASK,
        extra=config["train"]["extra"],
    log:
        f"{RESULTS}/logs/train/cohort.log",
    threads: config["train"]["threads"]
    resources:
        mem_mb=16000,
        runtime=240,
    conda:
        "../envs/pathattn.yaml"
    shell:
        # the folds of an earlier run go first: Lightning would keep their checkpoints beside the new ones
        "rm -rf {params.out}/fold_* && "
        "pathattn train {params.configs} --samples {input.samples} --features {params.features} "
        "--out {params.out} --task {params.task} {params.extra} > {log} 2>&1"
