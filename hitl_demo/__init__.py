"""`hitl-proxy demo`: the whole loop in a minute, with no SaaS account.

A small local SaaS (`saas`), the proxy in front of it, and a scripted agent (`agent`) that
proposes realistic changes; the reviewer opens the printed URL, signs in with the printed token
and decides. A package of its own, outside `proxy_addon`: the proxy never imports it, only the
`demo` command does, when it runs.
"""
