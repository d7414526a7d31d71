"""One module per API area; each method validates its input and calls the client."""

from .carts import Carts
from .checkouts import Checkouts
from .events import Events
from .orders import Orders
from .plans import Plans

__all__ = ["Carts", "Checkouts", "Events", "Orders", "Plans"]
