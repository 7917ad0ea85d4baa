# The study's HTML report (pathattn report): metrics, predictions, heatmaps and QC of the results folder.


rule report:
    input:
        heatmaps=expand(f"{RESULTS}/heatmaps/{{slide_id}}_heatmap.png", slide_id=SLIDE_IDS),
        qc=expand(f"{RESULTS}/tiles/qc/{{slide_id}}.png", slide_id=SLIDE_IDS),
        metrics=f"{RESULTS}/train/metrics.json",
        predictions=f"{RESULTS}/predict/predictions.csv",
        samples=SAMPLE_SHEET,
    output:
        html=report(f"{RESULTS}/report.html", caption="../report/report.rst", category="Report"),
    params:
        run=folder_of("output", "html"),
        annotations=ANNOTATION_ARGS,
    log:
        f"{RESULTS}/logs/report/cohort.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    conda:
        "../envs/pathattn.yaml"
    shell:
        "pathattn report --run {params.run} --out {output.html} --samples {input.samples} {params.annotations} "
        "> {log} 2>&1"
