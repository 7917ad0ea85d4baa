# Tiling: one job per slide, or with `batch: true` one job for the cohort (--workers slides at a time); every
# job writes into the tiles folder (per-slide files; manifest.csv merged under a lock). With `kind: volumes` the
# same command tiles each study of the sheet (its images and label volume are the job's inputs) into slices or
# 3-D patches, with the volume options of tile.config (configs/tile/volume_*.yaml), and writes its foreground
# mask as foreground/{id}.nii.gz where a slide has tissue/{id}.geojson.


rule tile:
    input:
        slides=job_slides,
        config=TILE_CONFIG,
    output:
        coords=job_files(LAYOUT.coords),
        mask=job_files(mask),
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
