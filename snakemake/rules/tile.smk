# Tiling: one job per slide, or with `batch: true` one job for the cohort (--workers slides at a time); every
# job writes into the tiles folder (per-slide files; manifest.csv merged under a lock).


rule tile:
    input:
        slides=job_slides,
        config=TILE_CONFIG,
    output:
        coords=job_files(LAYOUT.coords),
        tissue=job_files(LAYOUT.tissue),
        qc=slide_reports(LAYOUT.qc, caption="../report/qc.rst", category="Tiling"),
    params:
        out=LAYOUT.stage("tiles"),
        samples=SAMPLE_SHEET,
        slide_ids=slide_ids_arg,
        annotations=ANNOTATION_ARGS,
        extra=config["tile"]["extra"],
    log:
        LAYOUT.log("tile", JOB),
    threads: TILE_THREADS
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/pathattn.yaml"
    shell:
        "pathattn tile --config {input.config} --samples {params.samples} {params.slide_ids} --out {params.out} "
        "--workers {threads} {params.annotations} {params.extra} > {log} 2>&1"
