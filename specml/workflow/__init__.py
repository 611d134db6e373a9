"""The active-learning IR workflow (PALIRS): molecules -> models -> ML-MD IR spectra."""

from specml.workflow.active_learning import IRWorkflow, WorkflowResult
from specml.workflow.config import WORKFLOW_PRESETS, WorkflowConfig, get_workflow_config
from specml.workflow.prediction import predict_spectra, predict_spectrum, resolve_models_dir
from specml.workflow.production import ProductionJob, job_spectra, production_spectra, run_production

__all__ = ["IRWorkflow", "ProductionJob", "WORKFLOW_PRESETS", "WorkflowConfig", "WorkflowResult",
           "get_workflow_config", "job_spectra", "predict_spectra", "predict_spectrum", "production_spectra",
           "resolve_models_dir", "run_production"]
