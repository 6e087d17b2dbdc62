"""Multi-task training: config, trainer, freezing, optimisation, evaluation and run reports."""

from mtsent.training.config import TrainConfig, load_config
from mtsent.training.evaluation import evaluate_task
from mtsent.training.trainer import Trainer, TrainingInterrupted

__all__ = ["TrainConfig", "Trainer", "TrainingInterrupted", "evaluate_task", "load_config"]
