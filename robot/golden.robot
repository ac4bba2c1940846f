*** Settings ***
Documentation       The firmware trains the paper's model inside the simulated STM32L496 exactly like the
...                 TensorFlow golden model: every input size of the paper, Full and transfer learning,
...                 10 SGD steps of batch 32, each batch's windows stored into the dataset region of the
...                 simulated RAM in one transfer and trained by one TRAIN_BATCH command. With
...                 ``--variable MODEL:...`` the same on the user's model instead (tag ``model``).
Resource            pyodl.resource
Suite Setup         Suite Setup For Backend
Suite Teardown      Suite Teardown For Backend
Test Setup          Test Setup For Backend
Test Teardown       Test Teardown For Backend
Test Template       Board Training Should Match Golden Model
Test Tags           paper


*** Test Cases ***    INPUT    MODE
T=20 Full             20       full
T=20 TL               20       tl
T=40 Full             40       full
T=40 TL               40       tl
T=60 Full             60       full
T=60 TL               60       tl
T=80 Full             80       full
T=80 TL               80       tl
T=100 Full            100      full
T=100 TL              100      tl

Your Model Trains Like TensorFlow
    [Documentation]    MODEL in its MODE, 10 steps of batch 32 on DATA's windows or the seeded generator's.
    [Tags]    model
    [Template]    NONE
    Build Firmware For Suite Model
    Start Board
    Run Training Steps    steps=10    batch=32
    Weights Should Match Golden Model


*** Keywords ***
Board Training Should Match Golden Model
    [Documentation]    Ten steps of batch 32 on the board, the same in TensorFlow, weights compared.
    [Arguments]    ${input}    ${mode}
    Build Firmware For Paper Model    ${input}    ${mode}
    Start Board
    Run Training Steps    steps=10    batch=32
    Weights Should Match Golden Model
