# Tiling: one job per slide, all writing into {results}/tiles (per-slide files; manifest.csv merged under a lock).


rule tile:
    input:
        slide=lambda wildcards: SLIDES[wildcards.slide_id],
        config=TILE_CONFIG,
    output:
        coords=f"{RESULTS}/tiles/coords/{{slide_id}}.h5",
        tissue=f"{RESULTS}/tiles/tissue/{{slide_id}}.geojson",
        qc=report(
            f"{RESULTS}/tiles/qc/{{slide_id}}.png",
            caption="../report/qc.rst",
            category="Tiling",
            labels={"slide": "{slide_id}"},
        ),
    params:
        out=folder_of("output", "coords", 2),
        samples=SAMPLE_SHEET,
        annotations=ANNOTATION_ARGS,
        extra=config["tile"]["extra"],
    log:
        f"{RESULTS}/logs/tile/{{slide_id}}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/pathattn.yaml"
    shell:
        "pathattn tile --config {input.config} --samples {params.samples} --slide-ids {wildcards.slide_id} "
        "--out {params.out} {params.annotations} {params.extra} > {log} 2>&1"
