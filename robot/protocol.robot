*** Settings ***
Documentation       Every command over both transports, the RAM mailbox and console UART frames; refused
...                 commands and malformed frames get error codes and leave the weights untouched.
Resource            pyodl.resource
Suite Setup         Suite Setup For Backend
Suite Teardown      Suite Teardown For Backend
Test Setup          Start Paper Model Board
Test Teardown       Test Teardown For Backend


*** Variables ***
${NONFINITE}        NaN or infinity in an input, the loss or a gradient (nothing changed)
${OUT_OF_BOUND}     a parameter is NaN or beyond the model's bound (nothing written)
${REJECTED}         step rejected: a parameter would leave the bound (weights unchanged, batch cleared)
${NO_PARAMS}        layer index out of range or layer without parameters


*** Test Cases ***
Commands Work Over The Mailbox
    [Documentation]    The host writes commands and windows into the mailbox in simulated RAM.
    [Template]    Every Command Should Work Over
    mailbox

Commands Work Over UART Frames
    [Documentation]    The same commands as CRC-checked frames on the console UART (LPUART1).
    [Template]    Every Command Should Work Over
    uart

Refused Commands Leave Weights Untouched Over The Mailbox
    [Documentation]    Each refusal names its reason; not one weight changes.
    [Template]    Refused Commands Should Leave Weights Untouched
    mailbox

Refused Commands Leave Weights Untouched Over UART Frames
    [Documentation]    Each refusal names its reason; not one weight changes.
    [Template]    Refused Commands Should Leave Weights Untouched
    uart

An Access Outside The Memory Map Fails The Test
    [Documentation]    The guard itself, on either backend: a read where nothing is mapped is an error at
    ...    once on the Unicorn board, and under Renode a logged warning that the teardown's log check
    ...    fails on. The log tester is then started afresh, so the teardown passes on the expected line.
    [Tags]    memory-access
    Run Keyword And Expect Error    *    Read Outside The Memory Map And Check The Log
    IF    '${BACKEND}' == 'renode'    Start Log Checks

An Access To A Register The Platform Does Not Model Fails The Test
    [Documentation]    The guard for the platform's own peripherals: a write to PWR past its registers stops
    ...    the Unicorn board at once, and under Renode the PWR model logs an error that the teardown's log
    ...    check fails on. The log tester is then started afresh, so the teardown passes on the expected line.
    [Tags]    memory-access
    Run Keyword And Expect Error    *    Write An Unmodelled Register And Check The Log
    IF    '${BACKEND}' == 'renode'    Start Log Checks

Malformed Frames Get Error Codes
    [Documentation]    Bad CRC, an impossible length and a payload too short for its fields.
    Use Transport    uart
    Take Weight Snapshot
    Send Frame With Bad CRC
    Last Status Should Be    frame CRC mismatch
    Send Frame With Length    60000
    Last Status Should Be    frame longer than the firmware accepts
    Send Frame With Short Payload
    Last Status Should Be    data length does not fit the command
    Weights Should Be Unchanged
    Info Should Describe The Model


*** Keywords ***
Start Paper Model Board
    [Documentation]    The paper's model at T=40 (120 floats per window), Full mode, on a fresh board.
    Test Setup For Backend
    Build Firmware For Paper Model    40    full
    Start Board

Every Command Should Work Over
    [Documentation]    INFO, LAYER_INFO, GET/SET_PARAMS, PREDICT, LOAD_SAMPLE, TRAIN_SAMPLE, SGD_STEP,
    ...    ZERO_GRADS, SET_TRAINABLE, STORE_DATASET, TRAIN_BATCH and EVALUATE all answer ok.
    [Arguments]    ${transport}
    Use Transport    ${transport}
    Info Should Describe The Model
    Parameters Should Round Trip
    Prediction Should Be A Distribution
    Command Should Answer    ok    LAYER_INFO    arg0=3
    Command Should Answer    ok    LOAD_SAMPLE    data_floats=120    fill=0.25
    Command Should Answer    ok    TRAIN_SAMPLE    arg0=2
    Command Should Answer    ok    SGD_STEP    arg_f=0.01
    Command Should Answer    ok    TRAIN_SAMPLE    arg0=1
    Command Should Answer    ok    ZERO_GRADS
    Command Should Answer    ok    SET_TRAINABLE    arg0=2
    Command Should Answer    ok    SET_TRAINABLE    arg0=4
    Store Dataset Records    count=4    fill=0.25    label=1
    Command Should Answer    ok    TRAIN_BATCH    arg0=0    arg1=4    arg_f=0.01
    Command Should Answer    ok    EVALUATE    arg0=1    arg1=3

Refused Commands Should Leave Weights Untouched
    [Documentation]    Layer 1 is a pooling layer; layer 6 (Dense(6)) holds 300 + 6 values.
    [Arguments]    ${transport}
    Use Transport    ${transport}
    Take Weight Snapshot
    Command Should Answer    SGD step with no accumulated sample    SGD_STEP    arg_f=0.01
    Command Should Answer    ${NONFINITE}    LOAD_SAMPLE    data_floats=120    fill=nan
    Command Should Answer    data length does not fit the command    LOAD_SAMPLE    data_floats=7
    Command Should Answer    ok    LOAD_SAMPLE    data_floats=120    fill=0.5
    Command Should Answer    label out of range    TRAIN_SAMPLE    arg0=99
    Command Should Answer    ok    TRAIN_SAMPLE    arg0=0
    Command Should Answer    learning rate is not a finite number > 0    SGD_STEP    arg_f=nan
    Diverging Step Should Be Rejected
    Command Should Answer    ${NO_PARAMS}    SET_PARAMS    arg0=1    data_floats=4    fill=1
    Command Should Answer    element count does not match the layer    SET_PARAMS    arg0=6    arg1=300
    ...    data_floats=20    fill=1
    Command Should Answer    ${OUT_OF_BOUND}    SET_PARAMS    arg0=6    data_floats=4    fill=inf
    Command Should Answer    data length does not fit the command    GET_PARAMS    arg0=2    arg2=100000
    Command Should Answer    trainable layer count out of range for this build    SET_TRAINABLE    arg0=9
    Command Should Answer    unknown command    99
    Dataset Commands Should Be Refused
    Weights Should Be Unchanged

Diverging Step Should Be Rejected
    [Documentation]    A sample is accumulated (LOAD_SAMPLE and TRAIN_SAMPLE above); a learning rate of 1e30
    ...    would take weights beyond the model's bound (1e4): refused whole, the batch cleared.
    Command Should Answer    ${REJECTED}    SGD_STEP    arg_f=1e30
    Command Should Answer    SGD step with no accumulated sample    SGD_STEP    arg_f=0.01
    Command Should Answer    ${OUT_OF_BOUND}    SET_PARAMS    arg0=6    data_floats=4    fill=1e5

Dataset Commands Should Be Refused
    [Documentation]    The dataset region holds 32 records of 121 words (a window of 120 floats, a label).
    Store Dataset Records    count=4    fill=nan    label=0
    Command Should Answer    ${NONFINITE}    TRAIN_BATCH    arg0=0    arg1=4    arg_f=0.01
    Store Dataset Records    count=4    fill=0.5    label=99
    Command Should Answer    label out of range    TRAIN_BATCH    arg0=0    arg1=4    arg_f=0.01
    Command Should Answer    argument out of range    TRAIN_BATCH    arg0=0    arg1=0    arg_f=0.01
    Command Should Answer    argument out of range    EVALUATE    arg0=30    arg1=4
    Command Should Answer    argument out of range    STORE_DATASET    arg0=15488    data_floats=1

Read Outside The Memory Map And Check The Log
    [Documentation]    What a firmware bug would do, then what every teardown checks.
    Read Outside The Memory Map
    Platform Errors Should Not Be In The Log

Write An Unmodelled Register And Check The Log
    [Documentation]    What a firmware bug would do, then what every teardown checks.
    Write An Unmodelled Register
    Platform Errors Should Not Be In The Log
