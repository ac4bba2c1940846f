*** Settings ***
Documentation       SRAM limits of the STM32L496 (320 KB): the paper's model fits at every input size with
...                 its stack inside the reserved region, and a model that cannot fit fails to link with
...                 the overflow in bytes. With ``--variable MODEL:...``, the user's model instead (tag
...                 ``model``): its SRAM and flash per section against the chip's, or the build's overflow.
Resource            pyodl.resource
Suite Setup         Suite Setup For Backend
Suite Teardown      Suite Teardown For Backend
Test Setup          Test Setup For Backend
Test Teardown       Test Teardown For Backend


*** Test Cases ***
Paper Model Fits At Every Input Size
    [Documentation]    Links, boots and trains a batch at each T and mode; the RAM used is in the log.
    [Tags]    paper
    [Template]    Paper Model Should Fit And Train
    20     full
    20     tl
    40     full
    40     tl
    60     full
    60     tl
    80     full
    80     tl
    100    full
    100    tl

Oversized Model Fails To Link
    [Documentation]    At T=4000 the activations alone exceed the SRAM.
    [Tags]    paper
    ${overflow}=    Oversized Model Should Fail To Link    4000
    Should Be True    ${overflow} > 0

Your Model Fits And Trains
    [Documentation]    MODEL links within 320 KB of SRAM and 1 MB of flash (bytes per section in the log), boots,
    ...    trains a batch, and its stack stays inside the reserved stack.
    [Tags]    model
    Suite Model Should Fit The Chip
    Start Board
    Run Training Steps    steps=1    batch=4
    Stack High Water Mark Should Be Below Reserved Stack
    Board Should Not Have Faulted


*** Keywords ***
Paper Model Should Fit And Train
    [Documentation]    One training batch exercises the deepest call chain before the stack is checked.
    [Arguments]    ${input}    ${mode}
    Build Firmware For Paper Model    ${input}    ${mode}
    Firmware Should Fit In SRAM
    Start Board
    Run Training Steps    steps=1    batch=4
    Stack High Water Mark Should Be Below Reserved Stack
    Board Should Not Have Faulted
