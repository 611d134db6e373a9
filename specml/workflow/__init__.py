"""The active-learning IR workflow (PALIRS): molecules -> models -> ML-MD IR spectra."""

from specml.workflow.active_learning import IRWorkflow, WorkflowResult, production_spectra
from specml.workflow.config import WORKFLOW_PRESETS, WorkflowConfig, get_workflow_config
from specml.workflow.prediction import predict_spectra, predict_spectrum, resolve_models_dir

__all__ = ["IRWorkflow", "WORKFLOW_PRESETS", "WorkflowConfig", "WorkflowResult", "get_workflow_config",
           "predict_spectra", "predict_spectrum", "production_spectra", "resolve_models_dir"]
