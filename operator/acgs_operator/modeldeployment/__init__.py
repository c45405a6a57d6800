"""The Modeldeployment kind: pure builders (`build`) and kopf handlers (`handlers`)."""
