# Feature extraction: one job per slide (a cluster runs them in parallel, each on its own GPU), or with
# `batch: true` one job for the cohort (one process, the encoder loaded once).


rule extract:
    input:
        coords=job_files(LAYOUT.coords),
        slides=job_slides,
        config=EXTRACT_CONFIG,
        weights=WEIGHTS or [],
    output:
        features=job_files(LAYOUT.features),
    params:
        coords=LAYOUT.stage("tiles"),
        out=LAYOUT.stage("features"),
        slide_ids=slide_ids_arg,
        weights=lambda wildcards, input: f"--weights {input.weights}" if input.weights else "",
        device=config["extract"]["device"],
        extra=config["extract"]["extra"],
    log:
        LAYOUT.log("extract", JOB),
    threads: config["extract"]["threads"]
    resources:
        mem_mb=16000,
        runtime=120,
    conda:
        "../envs/pathattn.yaml"
    shell:
        "pathattn extract --config {input.config} --coords {params.coords} {params.slide_ids} --out {params.out} "
        "--device {params.device} {params.weights} {params.extra} > {log} 2>&1"
