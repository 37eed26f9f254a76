"""Names of what our addons leave in `flow.metadata` for one another (never sent anywhere)."""

AGENT_KEY = "hitl_agent"  # the agent named by proxy authentication
CONTEXT_KEY = "hitl_context"  # review_api Context: the X-HITL-* headers, taken off the request
DECISION_KEY = "hitl_decision"  # passed | held | allowed | denied | refused | proxy
PROPOSAL_KEY = "hitl_proposal"  # the write's Proposal, once built
HELD_KEY = "hitl_held"  # the approval id of a held or denied write
APPROVAL_KEY = "hitl_approval_id"  # set only when an approved write is released upstream
REQUESTED_KEY = "hitl_requested"  # (host, port) the agent asked for, when --resolve redirected it
