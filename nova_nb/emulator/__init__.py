"""A local, protocol-faithful Amazon Nova Sonic endpoint.

The wire layer: event-stream framing (:mod:`.eventstream`), SigV4 verification (:mod:`.sigv4`), a
per-run CA (:mod:`.tls`), the HTTPS/HTTP/2 server (:mod:`.server`) and a background-thread runner
(:mod:`.background`). Public names are re-exported one per line (``X as X`` marks a re-export).
"""

from nova_nb.emulator.background import BackgroundEmulator as BackgroundEmulator
from nova_nb.emulator.eventstream import EventStreamError as EventStreamError
from nova_nb.emulator.eventstream import Message as Message
from nova_nb.emulator.eventstream import MessageDecoder as MessageDecoder
from nova_nb.emulator.eventstream import decode_message as decode_message
from nova_nb.emulator.eventstream import encode_message as encode_message
from nova_nb.emulator.server import Admission as Admission
from nova_nb.emulator.server import EmulatorServer as EmulatorServer
from nova_nb.emulator.server import HttpError as HttpError
from nova_nb.emulator.server import RequestInfo as RequestInfo
from nova_nb.emulator.server import ServerStream as ServerStream
from nova_nb.emulator.server import StreamClosedError as StreamClosedError
from nova_nb.emulator.server import StreamHandler as StreamHandler
from nova_nb.emulator.sigv4 import AuthFailure as AuthFailure
from nova_nb.emulator.sigv4 import EmulatorCredentials as EmulatorCredentials
from nova_nb.emulator.sigv4 import SignatureError as SignatureError
from nova_nb.emulator.tls import TlsFiles as TlsFiles
from nova_nb.emulator.tls import generate_tls_files as generate_tls_files
