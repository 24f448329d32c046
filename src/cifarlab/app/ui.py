"""The Gradio UI of the app: five tabs around :class:`~cifarlab.app.explorer.Explorer`'s callbacks,
each also an API endpoint, and the server.

Tabs: *Predict* (top-k classes and GradCAM of an uploaded or example image), *Misclassified*
(test images the model gets wrong, captioned, with their GradCAM), *Feature maps* (one
channel's activation in each block), *Kernels* (a conv layer's weights) and *Model card* (the
run's model card, with the reliability diagram and robustness figure of ``eval_dir``). No training.
"""
from __future__ import annotations

import functools
import html
import logging
import threading
from collections.abc import Callable
from typing import Any

import gradio as gr

from cifarlab.app.config import AppConfig
from cifarlab.app.explorer import MAX_SHOWN, Explorer
from cifarlab.errors import CifarlabError, ConfigError
from cifarlab.examples import CLASS_NAMES, example_paths
from cifarlab.runs.run import TrainedRun

log = logging.getLogger(__name__)

# System fonts: Gradio's default theme loads Google Fonts, which an offline machine cannot reach.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def user_errors(fn: Callable) -> Callable:
    """Turn a :class:`CifarlabError` raised by a callback into :class:`gradio.Error`, which the UI
    and the API client show as the message (other exceptions stay internal errors)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CifarlabError as err:  # the modal renders HTML: a file name must not inject any
            raise gr.Error(html.escape(str(err), quote=False), print_exception=False) from err
    return wrapper


def build_app(explorer: Explorer) -> gr.Blocks:
    """The UI around ``explorer``'s callbacks. API endpoints: /predict, /gradcam, /misclassified,
    /misclassified_gradcam, /test_summary, /feature_maps, /kernels, /model_card."""
    # the built-in examples are CIFAR-10 test images: offered to a run of CIFAR-10's classes only
    examples = [[str(path)] for path in example_paths()] if list(explorer.class_names) == CLASS_NAMES else []
    n_classes = len(explorer.class_names)
    fewest = min(explorer.features.channels.values())
    on = {name: user_errors(getattr(explorer, name)) for name in (
        "predict", "gradcam", "test_summary", "misclassified", "misclassified_gradcam", "feature_maps", "kernels",
        "model_card")}
    with gr.Blocks(title="cifarlab", analytics_enabled=False) as demo:
        gr.Markdown(f"# cifarlab: what the model sees\n**{explorer.run.net_name}** from `{explorer.run.ckpt_path}` · "
                    f"classes: {', '.join(explorer.class_names)}")
        with gr.Tab("Predict"):
            with gr.Row():
                with gr.Column():
                    side = explorer.run.image_size
                    image = gr.Image(label=f"Image (any size; centre square, resized to {side} x {side})", type="filepath",
                                     image_mode=None, sources=["upload", "clipboard"], height=256, elem_id="image")
                    if examples:
                        gr.Examples(examples, inputs=image, label="CIFAR-10 test images", examples_per_page=10,
                                    elem_id="examples")
                    k = gr.Slider(1, n_classes, value=min(3, n_classes), step=1, label="Top k classes", elem_id="k")
                    show_cam = gr.Checkbox(value=True, label="Show GradCAM")
                    with gr.Group() as cam_controls:
                        layer = gr.Dropdown(explorer.blocks, value=explorer.default_block, label="GradCAM layer")
                        opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Heat map opacity")
                    button = gr.Button("Predict", variant="primary", elem_id="predict")
                with gr.Column():
                    label = gr.Label(label="Top k classes", elem_id="topk")
                    cam = gr.Image(label="GradCAM of the top class (32 x 32 input, shown 4x)", format="png",
                                   interactive=False, height=288, elem_id="gradcam")
            # preprocess=False: the callbacks decode the upload themselves, so that a file that is not
            # an image gets our message rather than Gradio's generic processing error.
            button.click(on["predict"], [image, k], label, api_name="predict", preprocess=False)
            button.click(on["gradcam"], [image, show_cam, layer, opacity], cam, api_name="gradcam", preprocess=False)
            show_cam.change(lambda on: (gr.update(visible=on), gr.update(visible=on)), show_cam, [cam_controls, cam],
                            api_visibility="private")

        with gr.Tab("Misclassified"):
            problem = explorer.data_problem
            gr.Markdown(f"**Not available:** {problem}" if problem else
                        "Test images the model gets wrong, in test-set order, captioned *true: class, pred: class "
                        "(its probability) #test-set index*. The app predicts the test set in the background from "
                        "start-up (on 2 CPU cores about a minute; a click before then waits for it), or reads "
                        "the predictions.npz of the evaluate.py report given as eval_dir.")
            summary = gr.Markdown()
            with gr.Row():
                show_gallery = gr.Checkbox(value=True, label="Show misclassified images")
                count = gr.Slider(1, MAX_SHOWN, value=10, step=1, label="How many")
            with gr.Row():
                show_wrong_cam = gr.Checkbox(value=True, label="Show their GradCAM")
                wrong_count = gr.Slider(1, MAX_SHOWN, value=10, step=1, label="How many")
                wrong_layer = gr.Dropdown(explorer.blocks, value=explorer.default_block, label="GradCAM layer")
                wrong_opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Heat map opacity")
            show_wrong = gr.Button("Show", variant="primary", elem_id="show-misclassified")
            gallery = gr.Gallery(label="Misclassified test images", columns=5, format="png", elem_id="misclassified")
            cam_gallery = gr.Gallery(label="GradCAM of the predicted class", columns=5, format="png",
                                     elem_id="misclassified-gradcam")
            show_wrong.click(on["test_summary"], None, summary, api_name="test_summary")
            show_wrong.click(on["misclassified"], [show_gallery, count], gallery, api_name="misclassified")
            show_wrong.click(on["misclassified_gradcam"], [show_wrong_cam, wrong_count, wrong_layer, wrong_opacity],
                             cam_gallery, api_name="misclassified_gradcam")
            show_gallery.change(lambda on: gr.update(visible=on), show_gallery, gallery, api_visibility="private")
            show_wrong_cam.change(lambda on: gr.update(visible=on), show_wrong_cam, cam_gallery,
                                  api_visibility="private")

        with gr.Tab("Feature maps"):
            gr.Markdown("One channel of each block's output, from the first block (full resolution) to the last "
                        "(4 x 4), each scaled from its own minimum (dark) to maximum (yellow).")
            with gr.Row():
                with gr.Column():
                    fm_image = gr.Image(label="Image", type="filepath", image_mode=None,
                                        sources=["upload", "clipboard"], height=256)
                    if examples:
                        gr.Examples(examples, inputs=fm_image, label="CIFAR-10 test images", examples_per_page=10)
                    channel = gr.Slider(0, fewest - 1, value=0, step=1, label=f"Channel (0..{fewest - 1})")
                    fm_button = gr.Button("Show feature maps", variant="primary")
                fm_gallery = gr.Gallery(label="Activation per block", columns=2, format="png", elem_id="feature-maps")
            fm_button.click(on["feature_maps"], [fm_image, channel], fm_gallery, api_name="feature_maps",
                            preprocess=False)

        with gr.Tab("Kernels"):
            gr.Markdown("A conv layer's weights. Over RGB (the first conv): one RGB tile per kernel. Deeper: "
                        "row = output channel, column = input channel (first 32 of each), blue < 0 < red.")
            conv = gr.Dropdown(explorer.conv_layers, value=explorer.conv_layers[0], label="Conv layer")
            grid = gr.Image(label="Kernels", format="png", interactive=False)
            conv.change(on["kernels"], conv, grid, api_name="kernels")
            demo.load(on["kernels"], conv, grid, api_visibility="private")

        with gr.Tab("Model card"):
            card = gr.Markdown(elem_id="model-card")
            for image, caption in explorer.card_figures():
                gr.Image(image, label=caption, format="png", interactive=False, show_label=True)
            demo.load(on["model_card"], None, card, api_name="model_card")
    return demo


def launch(demo: gr.Blocks, server_name: str = "127.0.0.1", port: int | None = None, max_file_size: str | None = "25mb",
           block: bool = True) -> gr.Blocks:
    """Serve ``demo`` on ``server_name:port`` (``None``: Gradio's choice, ``GRADIO_SERVER_PORT`` when it is set, else
    the first free port from 7860); returns once the server is up unless ``block``.

    Raises:
        ConfigError: the port is taken.
    """
    try:
        demo.launch(server_name=server_name, server_port=port, max_file_size=max_file_size, theme=THEME,
                    prevent_thread_lock=not block, show_error=False)
    except OSError as err:
        raise ConfigError(f"cannot serve on {server_name}:{port} ({err}): choose another port with "
                          "server_port=... or GRADIO_SERVER_PORT=...") from err
    return demo


def serve(cfg: AppConfig) -> None:
    """Load the run and serve the app until interrupted (``app.py``'s job); the test set is
    predicted in the background from start-up, so that the misclassified tab is ready when asked."""
    run = TrainedRun(cfg.ckpt_path, data_root=cfg.data.root, precision=cfg.precision)
    log.info("serving %s in %s on %s", run.ckpt_path, run.precision, run.device)
    explorer = Explorer(run, cfg.eval_dir, cfg.max_megapixels)
    if explorer.data_problem is None:
        threading.Thread(target=explorer.mistakes, name="predict-test-set", daemon=True).start()
    launch(build_app(explorer), cfg.server_name, cfg.server_port, cfg.max_file_size)
