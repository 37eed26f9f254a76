"""The adversarial suite: the gate tried as an attacker would, through the real proxy process.

Every test sends what nobody expects (raw sockets, split TLS records, odd verbs, Host mismatches,
mapped IPv6, duplicate JSON keys, secrets in bodies nobody parses) and checks that nothing
reached the upstream unheld and no secret landed anywhere but upstream. The rule each class
enforces, and where it is tried:

1. Raw TCP (test_transport): every byte an intercepted connection carries is parsed as HTTP by
   the proxy or the connection is closed; a tunnel is piped only to `passthrough_hosts`, and
   settings that re-open the pipe are refused at start-up.
2. Methods (test_transport): a read is exactly GET, HEAD or OPTIONS (or a POST a connector
   declares a read); every other token is a write; an override naming anything else makes a
   read a write, one that is not a single token is refused.
3. Host binding (test_transport): a request whose Host, absolute-form authority or TLS server
   name differs from the tunnel's target is refused with 421 and a JSON reason.
4. Reads that carry writes (test_reads_carrying_writes): a request is a read only when every
   way a server could read it is a read: GraphQL anywhere, duplicate JSON keys, subrequest
   methods, non-canonical paths.
5. WebSocket (test_transport): upgrades only to `websocket_hosts`, other upgrades refused.
6. Secrets (test_secrets): header values are kept only for an allow-list; a body only as the
   proxy parsed and masked it, anything else as type, size and hash.
7. The review port (test_transport): no spelling of this machine's addresses reaches it.
8. Policy (test_transport): a configured task beats the agent's X-HITL-Task header.
9. Per-agent bound (test_review_side): one agent's flood leaves room for the others.
10. Bodies (test_limits): `limits.max_body` bounds every framing and encoding, 413 as soon as
    it is passed.
11. Retries (test_retries): a retry joins only when key and fingerprint agree; every approval
    reaches a terminal state.
12-14. Review side (test_review_side): audit entries by group, CSV cells never formulas, a
    witnessed audit head catches a re-signed chain.
15. Packaging (tests/test_package.py): a normal install serves the review page.
"""
