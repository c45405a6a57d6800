"""The Trainingjob kind: pure builders (`build`) and kopf handlers (`handlers`)."""
