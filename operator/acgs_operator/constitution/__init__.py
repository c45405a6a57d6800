"""The Constitution kind: pure builders (`build`) and kopf handlers (`handlers`)."""
