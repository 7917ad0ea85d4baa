# Attention heatmaps (PNG over the thumbnail, QuPath GeoJSON of every patch and the top k): one job per slide,
# or with `batch: true` one job for the cohort. Slides only: a volume study (`kind: volumes`) has no heatmap job;
# the report draws each volume's attention along its slice axis.

if HEATMAPS:

    rule heatmap:
        input:
            attention=job_files(LAYOUT.attention),
            predictions=LAYOUT.predictions,
            tissue=job_files(LAYOUT.tissue),
            slides=job_slides,
        output:
            png=slide_reports(LAYOUT.heatmap, caption="../report/heatmap.rst", category="Heatmaps"),
            geojson=job_files(LAYOUT.heatmap_geojson),
            top=job_files(top_patches),
        params:
            predictions=LAYOUT.stage("predict"),
            tiles=LAYOUT.stage("tiles"),
            out=LAYOUT.stage("heatmaps"),
            slide_ids=slide_ids_arg,
            samples=SAMPLE_SHEET,
            top_k=TOP_K,
            extra=config["heatmap"]["extra"],
        log:
            LAYOUT.log("heatmap", JOB),
        threads: 1
        resources:
            mem_mb=4000,
            runtime=15,
        conda:
            "../envs/pathattn.yaml"
        shell:
            "pathattn heatmap --predictions {params.predictions} --tiles {params.tiles} --out {params.out} "
            "{params.slide_ids} --samples {params.samples} --top-k {params.top_k} {params.extra} > {log} 2>&1"
