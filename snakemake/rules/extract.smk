# Feature extraction: one job per slide (a cluster runs them in parallel, each on its own GPU).


rule extract:
    input:
        coords=f"{RESULTS}/tiles/coords/{{slide_id}}.h5",
        slide=lambda wildcards: SLIDES[wildcards.slide_id],
        config=EXTRACT_CONFIG,
        weights=WEIGHTS or [],
    output:
        features=f"{RESULTS}/features/h5_files/{{slide_id}}.h5",
    params:
        coords=folder_of("input", "coords"),
        out=folder_of("output", "features", 2),
        weights=lambda wildcards, input: f"--weights {input.weights}" if input.weights else "",
        device=config["extract"]["device"],
        extra=config["extract"]["extra"],
    log:
        f"{RESULTS}/logs/extract/{{slide_id}}.log",
    threads: config["extract"]["threads"]
    resources:
        mem_mb=16000,
        runtime=120,
    conda:
        "../envs/pathattn.yaml"
    shell:
        "pathattn extract --config {input.config} --coords {params.coords} --slide-ids {wildcards.slide_id} "
        "--out {params.out} --device {params.device} {params.weights} {params.extra} > {log} 2>&1"
