"""Machine providers: lease, prepare, watch and tear down an expert's machine.

``ssh`` holds the one SSH client (paramiko) every part of baseliner uses; ``sshd`` runs a
real OpenSSH server on loopback (the ``local`` provider's machine, and the tests' hosts).
"""
