"""nova_nb: real-time speech-to-speech with Amazon Nova Sonic, from JupyterLab.

``from nova_nb import s2s`` gives the conversation API; ``nova_nb.emulator`` the offline,
protocol-faithful Nova Sonic endpoint; ``nova_nb.audio`` PCM helpers.
"""

__version__ = "0.1.0"
