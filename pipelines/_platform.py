"""Per-task Kubernetes settings: resources, GPU node pool, env from the ConfigMap and Secret, retries, caching."""

from __future__ import annotations

from typing import Any

from xmodal.config import PipelineConfig, TaskResources


def configure_task(task: Any, *, cfg: PipelineConfig, resources: TaskResources | None = None,
                   name: str | None = None) -> Any:
    """Apply ``resources`` (default ``cfg.defaults``) and the cluster wiring to a pipeline task.

    A task asking for an accelerator also gets the GPU image, the GPU pool's node selector and
    tolerations. Every task gets the S3 keys from ``cfg.s3_secret``, MLflow client credentials from
    ``cfg.mlflow_secret`` and the MLflow/S3 endpoints from ``cfg.config_map`` as environment variables
    (all optional, so a cluster without them still runs).

    Returns
    -------
    PipelineTask
        The same task, for chaining.
    """
    from kfp import kubernetes

    from xmodal.components._image import GPU_IMAGE

    res = resources or cfg.defaults
    if name:
        task.set_display_name(name)
    if res.cpu_request:
        task.set_cpu_request(res.cpu_request)
    if res.cpu_limit:
        task.set_cpu_limit(res.cpu_limit)
    if res.memory_request:
        task.set_memory_request(res.memory_request)
    if res.memory_limit:
        task.set_memory_limit(res.memory_limit)
    if res.accelerator_count > 0:
        task.set_accelerator_type(res.accelerator_type)
        task.set_accelerator_limit(res.accelerator_count)
        task.set_container_image(GPU_IMAGE)
        for key, value in sorted(cfg.gpu_pool.node_selector.items()):
            kubernetes.add_node_selector(task, label_key=key, label_value=value)
        for tol in cfg.gpu_pool.tolerations:
            kubernetes.add_toleration(task, key=tol.key, operator=tol.operator, value=tol.value, effect=tol.effect)
    if res.retries:
        task.set_retry(num_retries=res.retries, backoff_duration="30s", backoff_factor=2.0)
    task.set_caching_options(enable_caching=cfg.caching)
    for secret, keys in ((cfg.s3_secret, cfg.s3_secret_keys), (cfg.mlflow_secret, cfg.mlflow_secret_keys)):
        if keys:
            kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env={k: k for k in keys},
                                         optional=True)
    if cfg.config_map_keys:
        kubernetes.use_config_map_as_env(task, config_map_name=cfg.config_map,
                                         config_map_key_to_env={k: k for k in cfg.config_map_keys}, optional=True)
    return task
