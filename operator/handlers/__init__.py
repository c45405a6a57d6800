"""kopf handlers. Importing this package registers them (``kopf run -m acgs_operator.handlers``)."""

from acgs_operator.handlers import constitution, indexes, modeldeployment, startup, trainingjob

__all__ = ["constitution", "indexes", "modeldeployment", "startup", "trainingjob"]
