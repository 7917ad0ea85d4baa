# Out-of-fold prediction: each slide with the checkpoint of the fold that tested it, so its attention
# (and heatmap) comes from a model that never saw it.


rule predict:
    input:
        run=f"{RESULTS}/train/predictions.csv",
        features=expand(f"{RESULTS}/features/h5_files/{{slide_id}}.h5", slide_id=SLIDE_IDS),
    output:
        predictions=report(
            f"{RESULTS}/predict/predictions.csv",
            caption="../report/predictions.rst",
            category="Prediction",
        ),
        attention=expand(f"{RESULTS}/predict/attention/{{slide_id}}.h5", slide_id=SLIDE_IDS),
    params:
        run=folder_of("input", "run"),
        features=folder_of("input", "features", 2),
        out=folder_of("output", "predictions"),
        device=config["predict"]["device"],
        extra=config["predict"]["extra"],
    log:
        f"{RESULTS}/logs/predict/cohort.log",
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../envs/pathattn.yaml"
    shell:
        "pathattn predict --run {params.run} --features {params.features} --out {params.out} "
        "--device {params.device} {params.extra} > {log} 2>&1"
