# Maps of the image classifiers, scored against the lesions: for each run of cams.runs and fold of cams.folds,
# pathattn cams explains the fold's held-out patients' lesion slices with Grad-CAM, Grad-CAM++, Eigen-CAM and
# Score-CAM (and MEDUSA's own maps), writing the slices' lesion masks and boxes beside the maps; then
# pathattn evaluate wsol scores every method (PxAP, MaxBoxAccV2, ...) beside the uniform baseline. Part of
# `all` and of the report with cams.activate.


rule cams:
    input:
        metrics=LAYOUT.classify_metrics(),
        coords=every_slide(LAYOUT.coords),
        samples=SAMPLE_SHEET,
    output:
        summary=LAYOUT.cams() / "cams.json",
    params:
        run=lambda wildcards: LAYOUT.classify_run(wildcards.run),
        tiles=LAYOUT.stage("tiles"),
        out=lambda wildcards: LAYOUT.cams(wildcards.run, wildcards.fold),
        extra=cams_extra,
    log:
        LAYOUT.log("cams", f"{RUN}_fold{FOLD}"),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/pathattn.yaml"
    shell:
        "pathattn cams --run {params.run} --fold {wildcards.fold} --tiles {params.tiles} --samples {input.samples} "
        "--out {params.out} --overwrite {params.extra} > {log} 2>&1"


rule evaluate_cams:
    input:
        cams=LAYOUT.cams() / "cams.json",
    output:
        metrics=LAYOUT.cams_wsol() / "metrics.json",
        summary=report(
            LAYOUT.cams_wsol() / "summary.csv",
            caption="../report/cams_wsol.rst",
            category="Localization",
            labels={"run": "{run}", "fold": "{fold}"},
        ),
    params:
        cams=lambda wildcards: LAYOUT.cams(wildcards.run, wildcards.fold),
        out=lambda wildcards: LAYOUT.cams_wsol(wildcards.run, wildcards.fold),
    log:
        LAYOUT.log("evaluate_cams", f"{RUN}_fold{FOLD}"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/pathattn.yaml"
    shell:
        "pathattn evaluate wsol --maps {params.cams} --out {params.out} > {log} 2>&1"
