"""One progress bar over the training epochs of a skorch-based deconvolver."""

from skorch.callbacks import Callback
from tqdm.auto import tqdm


class EpochBar(Callback):
    """A skorch callback ticking one bar per epoch (no per-batch bars).

    The bar shows the last training loss and tqdm's estimate of the
    remaining time.

    Parameters
    ----------
    desc : str
        Label of the bar.
    """

    def __init__(self, desc):
        self.desc = desc

    def on_train_begin(self, net, **kwargs):
        self.bar_ = tqdm(total=net.max_epochs, desc=self.desc, unit="epoch")

    def on_epoch_end(self, net, **kwargs):
        loss = net.history[-1].get("train_loss")
        if loss is not None:
            self.bar_.set_postfix(train_loss=f"{loss:.4g}", refresh=False)
        self.bar_.update()

    def on_train_end(self, net, **kwargs):
        self.bar_.close()
        self.bar_ = None
