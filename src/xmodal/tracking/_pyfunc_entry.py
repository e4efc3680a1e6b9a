"""MLflow "models from code" entry point: logged with every xmodal model instead of a pickle.

MLflow runs this file when the model is loaded; it needs only an installed ``xmodal``.
"""

from mlflow.models import set_model

from xmodal.tracking._pyfunc import XmodalPyfunc

set_model(XmodalPyfunc())
