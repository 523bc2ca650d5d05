"""The network: Keras 3 U-Net, devices and precision, training pairs, refine, tiled inference.

Public Keras API only (``keras.layers``, ``keras.ops``), TensorFlow by default and the same model
under ``KERAS_BACKEND=torch``; Keras is imported inside the functions that need it.
"""
