"""Names of what our addons leave in `flow.metadata` for one another (never sent anywhere).

Values are plain str, int, dict and list only: mitmproxy saves metadata with a flow
(`save_stream_file`), and its format takes nothing else.
"""

AGENT_KEY = "hitl_agent"  # the agent named by proxy authentication
CONTEXT_KEY = "hitl_context"  # {"agent", "task"} from the X-HITL-* headers or the agent's config
DECISION_KEY = "hitl_decision"  # passed | held | allowed | denied | refused | proxy
PROPOSAL_KEY = "hitl_proposal"  # what the traffic record keeps of a write's proposal
HELD_KEY = "hitl_held"  # the approval id of a held or denied write
APPROVAL_KEY = "hitl_approval_id"  # set only when an approved write is released upstream
REQUESTED_KEY = "hitl_requested"  # (host, port) the agent asked for, when --resolve redirected it
WEBSOCKET_KEY = "hitl_websocket"  # True when the upgrade was to a host in websocket_hosts
