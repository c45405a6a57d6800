"""kopf handlers. Importing this module registers them (``kopf run -m acgs_operator.handlers``)."""

from acgs_operator import indexes, startup
from acgs_operator.constitution import handlers as constitution
from acgs_operator.modeldeployment import handlers as modeldeployment
from acgs_operator.trainingjob import handlers as trainingjob

__all__ = ["constitution", "indexes", "modeldeployment", "startup", "trainingjob"]
