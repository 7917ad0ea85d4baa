# The study's HTML report (pathattn report): metrics, predictions, heatmaps and QC of the results folder, and
# the counterfactual and localization sections when the study activates explain and evaluate (so that a new
# explanation or evaluation makes the report again). A volume study's section is drawn from the attention, the
# tiling and the images themselves (there are no heatmaps); the image classifiers' section from their runs, maps
# and localization; after the segmentation runs too (a study that only segments has no tiling: no QC images).


rule report:
    input:
        pictures=every_slide(LAYOUT.heatmap if HEATMAPS else LAYOUT.attention) if MIL else [],
        qc=every_slide(LAYOUT.qc) if TILING else [],
        metrics=LAYOUT.train_metrics if MIL else [],
        predictions=LAYOUT.predictions if MIL else [],
        explain=LAYOUT.explain_summary if EXPLAIN else [],
        evaluate=LAYOUT.wsol_metrics if EVALUATE else [],
        classify=every_classify_run(),
        cams=every_cam_evaluation(),
        segment=every_segment_run(),
        samples=SAMPLE_SHEET,
    output:
        html=report(LAYOUT.report, caption="../report/report.rst", category="Report"),
    params:
        run=LAYOUT.root,
        annotations=ANNOTATION_ARGS,
    log:
        LAYOUT.log("report"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    conda:
        "../envs/pathattn.yaml"
    shell:
        "pathattn report --run {params.run} --out {output.html} --samples {input.samples} {params.annotations} "
        "> {log} 2>&1"
