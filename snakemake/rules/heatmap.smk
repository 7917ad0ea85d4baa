# Attention heatmaps: one job per slide (PNG over the thumbnail, QuPath GeoJSON of every patch and the top k).


rule heatmap:
    input:
        attention=f"{RESULTS}/predict/attention/{{slide_id}}.h5",
        predictions=f"{RESULTS}/predict/predictions.csv",
        tissue=f"{RESULTS}/tiles/tissue/{{slide_id}}.geojson",
        slide=lambda wildcards: SLIDES[wildcards.slide_id],
    output:
        png=report(
            f"{RESULTS}/heatmaps/{{slide_id}}_heatmap.png",
            caption="../report/heatmap.rst",
            category="Heatmaps",
            labels={"slide": "{slide_id}"},
        ),
        geojson=f"{RESULTS}/heatmaps/{{slide_id}}_heatmap.geojson",
        top=f"{RESULTS}/heatmaps/{{slide_id}}_top{TOP_K}.geojson",
    params:
        predictions=folder_of("input", "predictions"),
        tiles=folder_of("input", "tissue", 2),
        out=folder_of("output", "png"),
        samples=SAMPLE_SHEET,
        top_k=TOP_K,
        extra=config["heatmap"]["extra"],
    log:
        f"{RESULTS}/logs/heatmap/{{slide_id}}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    conda:
        "../envs/pathattn.yaml"
    shell:
        "pathattn heatmap --predictions {params.predictions} --tiles {params.tiles} --out {params.out} "
        "--slide-ids {wildcards.slide_id} --samples {params.samples} --top-k {params.top_k} {params.extra} "
        "> {log} 2>&1"
