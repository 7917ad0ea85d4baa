# Out-of-fold prediction: each slide with the checkpoint of the fold that tested it, so its attention
# (and heatmap) comes from a model that never saw it.


rule predict:
    input:
        run=LAYOUT.train_predictions,
        features=every_slide(LAYOUT.features),
    output:
        predictions=report(LAYOUT.predictions, caption="../report/predictions.rst", category="Prediction"),
        attention=every_slide(LAYOUT.attention),
    params:
        run=LAYOUT.stage("train"),
        features=LAYOUT.stage("features"),
        out=LAYOUT.stage("predict"),
        device=config["predict"]["device"],
        extra=config["predict"]["extra"],
    log:
        LAYOUT.log("predict"),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../envs/pathattn.yaml"
    shell:
        "pathattn predict --run {params.run} --features {params.features} --out {params.out} "
        "--device {params.device} {params.extra} > {log} 2>&1"
