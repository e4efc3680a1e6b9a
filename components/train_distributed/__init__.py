"""The ``train_distributed`` component (a Kubeflow Trainer TrainJob)."""
