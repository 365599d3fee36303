"""The model gateway: every chat and embedding call of flowloom, through one LiteLLM Router.

Models are configured in LiteLLM proxy's own YAML shape (`backends/models.yaml` is the
shipped default); aliases such as `local` and `local-embed` are what flows name.

>>> from flowloom.backends.gateway import GatewayModels, load_gateway
>>> models = GatewayModels(load_gateway())  # doctest: +SKIP
>>> models.chat_model("local").invoke("Hello").content  # doctest: +SKIP
'Hi! How can I help?'

litellm itself is imported on the first call, not by importing this package.
"""

from flowloom.backends.gateway.chat_model import CUT_OFF_NOTE, GatewayChatModel
from flowloom.backends.gateway.config import (
    Deployment,
    GatewayConfig,
    LiteLLMParams,
    ModelInfo,
    RetryPolicy,
    RouterSettings,
    load_gateway_config,
    parse_gateway_config,
)
from flowloom.backends.gateway.errors import (
    GatewayConfigError,
    GatewayError,
    ModelCallError,
    PartialAnswerError,
    UnknownModelError,
)
from flowloom.backends.gateway.gateway import MODEL_URL_ENV, EnsureService, Gateway
from flowloom.backends.gateway.health import DeploymentHealth
from flowloom.backends.gateway.provider import (
    MODELS_ENV,
    GatewayModels,
    load_gateway,
    shipped_models_config,
)
from flowloom.backends.gateway.records import CallRecord, UsageSummary, UsageTotals
from flowloom.backends.gateway.routes import Route

__all__ = [
    "CUT_OFF_NOTE",
    "MODELS_ENV",
    "MODEL_URL_ENV",
    "CallRecord",
    "Deployment",
    "DeploymentHealth",
    "EnsureService",
    "Gateway",
    "GatewayChatModel",
    "GatewayConfig",
    "GatewayConfigError",
    "GatewayError",
    "GatewayModels",
    "LiteLLMParams",
    "ModelCallError",
    "ModelInfo",
    "PartialAnswerError",
    "RetryPolicy",
    "Route",
    "RouterSettings",
    "UnknownModelError",
    "UsageSummary",
    "UsageTotals",
    "load_gateway",
    "load_gateway_config",
    "parse_gateway_config",
    "shipped_models_config",
]
