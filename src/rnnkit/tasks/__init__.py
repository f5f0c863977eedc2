"""One recipe per task: data, model, training, evaluation."""
