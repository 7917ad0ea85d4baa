# Segmentation networks on the label volumes (pathattn segment fit): one job per named run of segment.runs
# (e.g. the Attention U-Net and its parameter-matched U-Net), each a patient-level split into segment/<run>/ with
# its per-fold checkpoints, the held-out patients' masks, gate maps and metrics (Dice, HD95, NSD, lesion
# detection). The command reads the studies itself (from the sample sheet): it needs no tiling.


rule segment:
    input:
        volumes=VOLUME_FILES,
        samples=SAMPLE_SHEET,
        config=lambda wildcards: SEGMENT_CONFIGS[wildcards.run],
    output:
        metrics=report(
            LAYOUT.segment_metrics(),
            caption="../report/segment.rst",
            category="Segmentation",
            labels={"run": "{run}"},
        ),
        splits=LAYOUT.segment_run() / "splits.json",
    params:
        out=lambda wildcards: LAYOUT.segment_run(wildcards.run),
        extra=segment_extra,
    log:
        LAYOUT.log("segment", RUN),
    threads: config["segment"]["threads"]
    resources:
        mem_mb=16000,
        runtime=480,
    conda:
        "../envs/pathattn.yaml"
    shell:
        # --overwrite: a re-run replaces the earlier run as a whole, once the new one has finished
        "pathattn segment fit --config {input.config} --samples {input.samples} --out {params.out} --overwrite "
        "{params.extra} > {log} 2>&1"
