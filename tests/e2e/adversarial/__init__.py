"""The adversarial suite: the gate tried as an attacker would, through the real proxy process.

Each module enforces one class of rule (its docstring states it); every test sends what nobody
expects (raw sockets, split TLS records, odd verbs, Host mismatches, mapped IPv6, duplicate JSON
keys, secrets in unparsed bodies) and checks that nothing reached the upstream unheld and no
secret landed anywhere but upstream.
"""
