"""The expert's workspace: browser terminals bridged to the machine over SSH, and the editor's
file API over SFTP. Both reach the machine through ``machine.py``."""
