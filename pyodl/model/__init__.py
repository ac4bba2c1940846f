"""The network description shared by everything (architecture, layers, parameters), its Keras import and
export, the memory plan of every static buffer, and the C exporter. Only keras_io imports Keras."""
