# Weakly supervised localization of the out-of-fold attention (pathattn evaluate wsol): score rasters against
# the tumor annotations, the threshold and heatmap settings chosen on held-out annotated slides, the others
# scored once, beside a uniform and a few-shot baseline. Needs the study's annotations; a volume study
# (`kind: volumes`) scores each slice or 3-D patch against the label fractions its tiling recorded from the
# sheet's label_path column, without --annotations. Part of `all` (and of the report) with evaluate.activate;
# otherwise a target of its own: snakemake ... evaluate

if EVALUABLE:

    rule evaluate:
        input:
            attention=every_slide(LAYOUT.attention),
            tiles=every_slide(LAYOUT.coords if VOLUMES else LAYOUT.tissue),  # volumes: the label fractions
            features=every_slide(LAYOUT.features),
            config=WSOL_CONFIG,
        output:
            summary=report(LAYOUT.wsol_summary, caption="../report/wsol.rst", category="Localization"),
            metrics=LAYOUT.wsol_metrics,
            curves=report(LAYOUT.wsol_curves, caption="../report/wsol.rst", category="Localization"),
        params:
            scores=LAYOUT.stage("predict"),
            tiles=LAYOUT.stage("tiles"),
            features=LAYOUT.stage("features"),
            out=LAYOUT.stage("evaluate"),
            annotations=ANNOTATION_ARGS,
            extra=config["evaluate"]["extra"],
        log:
            LAYOUT.log("evaluate"),
        threads: 1
        resources:
            mem_mb=8000,
            runtime=60,
        conda:
            "../envs/pathattn.yaml"
        shell:
            "pathattn evaluate wsol --config {input.config} --scores {params.scores} {params.annotations} "
            "--tiles {params.tiles} --features {params.features} --out {params.out} {params.extra} > {log} 2>&1"
