"""The gateway's side of QA scorecards (keyword/qa/ is the pure core; keyword/worker.py publishes each finished
call's scorecard; gateway/store/scores.py keeps them): people's reviews of the automatic answers (:mod:`.reviews`:
overrides with a reason, agents' appeals, decisions) and the JSON the API answers with (:mod:`.views`). Routes in
gateway/web/app.py call these; who may call is app.py's business and what each role sees is callscribe/pii.py's.
"""

from __future__ import annotations

from .reviews import AppealBody, DecisionBody, OverrideBody, ReviewError, appeal, decide, override, publish
from .views import appeal_json, override_json, scorecard_json, scorecard_row

__all__ = ["AppealBody", "DecisionBody", "OverrideBody", "ReviewError", "appeal", "appeal_json", "decide", "override",
           "override_json", "publish", "scorecard_json", "scorecard_row"]
