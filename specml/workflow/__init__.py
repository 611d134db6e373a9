"""The active-learning IR workflow (PALIRS): molecules -> models -> ML-MD IR spectra.

Names are imported on first use: the settings (:mod:`specml.workflow.config`) check
``specml ir``'s options, which must not wait for torch and MACE to load.
"""

from specml._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "IRWorkflow": "active_learning",
        "WorkflowResult": "active_learning",
        "WORKFLOW_PRESETS": "config",
        "WorkflowConfig": "config",
        "get_workflow_config": "config",
        "predict_spectra": "prediction",
        "predict_spectrum": "prediction",
        "resolve_models_dir": "prediction",
        "ProductionJob": "production",
        "job_spectra": "production",
        "production_spectra": "production",
        "run_production": "production",
    },
)

__all__ = [
    "IRWorkflow",
    "ProductionJob",
    "WORKFLOW_PRESETS",
    "WorkflowConfig",
    "WorkflowResult",
    "get_workflow_config",
    "job_spectra",
    "predict_spectra",
    "predict_spectrum",
    "production_spectra",
    "resolve_models_dir",
    "run_production",
]
