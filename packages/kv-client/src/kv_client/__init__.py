"""kv-client: the Python SDK for kv.

    from kv_client import Client

    with Client(password="secret") as kv:
        kv.set("greeting", "hello")
        kv.get("greeting")          # 'hello', with its type

Errors form one tree rooted at :class:`KvError`: error replies are
:class:`ServerError` subclasses (``WrongTypeError``...), transport failures are
:class:`ConnectionError` and :class:`TimeoutError`, and a transaction whose watched
key changed raises :class:`WatchError`.
"""

from kv_protocol.errors import ArgumentTypeError as ArgumentTypeError
from kv_protocol.errors import AuthError as AuthError
from kv_protocol.errors import BusyError as BusyError
from kv_protocol.errors import CommandSyntaxError as CommandSyntaxError
from kv_protocol.errors import ExecAbortError as ExecAbortError
from kv_protocol.errors import KvError as KvError
from kv_protocol.errors import LoadingError as LoadingError
from kv_protocol.errors import LocalProtocolError as LocalProtocolError
from kv_protocol.errors import MisconfError as MisconfError
from kv_protocol.errors import NoAuthError as NoAuthError
from kv_protocol.errors import NoKeyError as NoKeyError
from kv_protocol.errors import NoPermError as NoPermError
from kv_protocol.errors import NotFloatError as NotFloatError
from kv_protocol.errors import NotIntegerError as NotIntegerError
from kv_protocol.errors import OomError as OomError
from kv_protocol.errors import OutOfRangeError as OutOfRangeError
from kv_protocol.errors import ProtocolError as ProtocolError
from kv_protocol.errors import ProtoError as ProtoError
from kv_protocol.errors import RemoteProtocolError as RemoteProtocolError
from kv_protocol.errors import ServerError as ServerError
from kv_protocol.errors import TooBigError as TooBigError
from kv_protocol.errors import WrongPassError as WrongPassError
from kv_protocol.errors import WrongTypeError as WrongTypeError

from ._async import AsyncClient as AsyncClient
from ._async_pipeline import AsyncPipeline as AsyncPipeline
from ._async_pubsub import AsyncPubSub as AsyncPubSub
from ._ciphers import AgeCipher as AgeCipher
from ._ciphers import GpgCipher as GpgCipher
from ._config import ClientConfig as ClientConfig
from ._config import ClientOptions as ClientOptions
from ._encryption import Cipher as Cipher
from ._encryption import DecryptionError as DecryptionError
from ._encryption import EncryptionError as EncryptionError
from ._errors import ConnectionError as ConnectionError
from ._errors import TimeoutError as TimeoutError
from ._errors import WatchError as WatchError
from ._pubsub import Message as Message
from ._sync import Client as Client
from ._sync_pipeline import Pipeline as Pipeline
from ._sync_pubsub import PubSub as PubSub
from ._version import __version__ as __version__

__all__ = [
    "AgeCipher",
    "ArgumentTypeError",
    "AsyncClient",
    "AsyncPipeline",
    "AsyncPubSub",
    "AuthError",
    "BusyError",
    "Cipher",
    "Client",
    "ClientConfig",
    "ClientOptions",
    "CommandSyntaxError",
    "ConnectionError",
    "DecryptionError",
    "EncryptionError",
    "ExecAbortError",
    "GpgCipher",
    "KvError",
    "LoadingError",
    "LocalProtocolError",
    "Message",
    "MisconfError",
    "NoAuthError",
    "NoKeyError",
    "NoPermError",
    "NotFloatError",
    "NotIntegerError",
    "OomError",
    "OutOfRangeError",
    "Pipeline",
    "ProtoError",
    "ProtocolError",
    "PubSub",
    "RemoteProtocolError",
    "ServerError",
    "TimeoutError",
    "TooBigError",
    "WatchError",
    "WrongPassError",
    "WrongTypeError",
    "__version__",
]
