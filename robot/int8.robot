*** Settings ***
Documentation       After a personalization on recorded windows, the board quantizes its model to int8 (weights
...                 of 8, 4 or 2 bits per layer, activations calibrated on the personalization windows) and its
...                 integer inference equals TensorFlow Lite's reference kernels on the same quantized model, bit
...                 for bit, on every test window of the subject. With ``--variable MODEL:...``, the user's
...                 model instead (tag ``model``), on DATA's recordings or the seeded generator's windows.
Resource            pyodl.resource
Suite Setup         Suite Setup For Backend
Suite Teardown      Suite Teardown For Backend
Test Setup          Test Setup For Backend
Test Teardown       Test Teardown For Backend


*** Test Cases ***
TL Personalization Then 8-bit Inference Matches TFLite
    [Documentation]    The paper's transfer-learning mode, all weights 8-bit; int8 and float agree on the classes.
    [Tags]    paper
    Build Firmware For Watch Model    40    tl
    Start Board
    Personalize On Watch Subject    subject=1    epochs=5
    Quantize On Board    bits=8,8,8,8
    Int8 Inference Should Match TFLite
    Int8 Classes Should Agree With Float    min_agreement=0.9

Full Personalization Then Mixed 8/4/2-bit Inference Matches TFLite
    [Documentation]    Every layer trained, then weights of 8, 4, 2 and 8 bits.
    [Tags]    paper
    Build Firmware For Watch Model    40    full
    Start Board
    Personalize On Watch Subject    subject=2    epochs=3
    Quantize On Board    bits=8,4,2,8
    Int8 Inference Should Match TFLite

Over UART Frames The Same Int8 Answers
    [Documentation]    Calibration, quantization and int8 inference through the console UART's frames.
    [Tags]    paper
    Build Firmware For Watch Model    40    tl
    Start Board
    Use Transport    uart
    Personalize On Watch Subject    subject=3    epochs=2
    Quantize On Board    bits=8,8,4,8
    Int8 Inference Should Match TFLite

Your Model: Personalization Then 8-bit Inference Matches TFLite
    [Documentation]    MODEL in its MODE, personalized, all weights 8-bit, int8 inference equal to TFLite's.
    [Tags]    model
    Build Firmware For Suite Model
    Start Board
    Personalize On Suite Data    epochs=3
    Quantize On Board    bits=8
    Int8 Inference Should Match TFLite

Your Model: Over UART Frames 4-bit Weights Match TFLite
    [Documentation]    The same through the console UART's frames, weights of 4 bits (BatchNormalization 8).
    [Tags]    model
    Build Firmware For Suite Model
    Start Board
    Use Transport    uart
    Personalize On Suite Data    epochs=2    seed=2
    Quantize On Board    bits=4
    Int8 Inference Should Match TFLite
