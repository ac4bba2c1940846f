*** Settings ***
Documentation       Personalized weights survive a power cycle, and a power cut at any point of a SAVE
...                 leaves the previous copy bootable: SAVE and the boot-time slot choice on the
...                 platform's STM32L4 flash controller (the Unicorn model, or renode/stm32l496.repl's
...                 flashctl). pytest replays every cut point of a SAVE on Unicorn; these are the
...                 boundaries: the first and last page erase, the first, a middle and the last state
...                 double-word, the header's first and last (commit) double-word. The paper's model at T=40 in
...                 TL, or with ``--variable MODEL:...`` the user's model in its MODE.
Resource            pyodl.resource
Suite Setup         Suite Setup For Backend
Suite Teardown      Suite Teardown For Backend
Test Setup          Test Setup For Backend
Test Teardown       Test Teardown For Backend


*** Test Cases ***
Saved Weights Survive A Power Cycle
    [Documentation]    Two SAVEs go to slots A then B; after a power cycle the board runs copy 2.
    [Tags]    power-control
    Start The Suite Model Board
    Board Should Have Booted From    defaults
    Run Training Steps    steps=1    batch=4
    Save Should Write Slot    0    1
    Run Training Steps    steps=1    batch=4    seed=2
    Save Should Write Slot    1    2
    Take Weight Snapshot
    Power Cycle Board
    Board Should Have Booted From    slot B
    Weights Should Be Unchanged

The Emulation Saves And Loads With Its Flash Slots
    [Documentation]    Renode's `Save` takes every peripheral, flashctl's bank (its script's variables) among
    ...    them: a board whose slot A holds a SAVE is saved to a file, cleared and loaded, goes on where it
    ...    was, and boots that copy after a power cycle. Renode only: the Unicorn board has no snapshots;
    ...    what `Save` needs of the platform (scripts that keep only data) is checked without Renode by
    ...    tests/board/test_renode_flash.py.
    [Tags]    power-control
    Skip If    '${BACKEND}' != 'renode'    the Unicorn board has no emulation snapshots
    Start The Suite Model Board
    Run Training Steps    steps=1    batch=4
    Save Should Write Slot    0    1
    Take Weight Snapshot
    Save And Load The Emulation
    Weights Should Be Unchanged
    Power Cycle Board
    Board Should Have Booted From    slot A
    Weights Should Be Unchanged

A Power Cut During Save Keeps The Previous Copy
    [Documentation]    The third SAVE (into slot A) loses power; the board boots copy 2 from slot B.
    [Tags]    power-control
    [Template]    Power Cut Should Keep The Previous Copy
    first erase             before
    first erase             halfway
    last erase              halfway
    first state             halfway
    middle state            before
    last state              halfway
    first header            halfway
    commit                  before
    commit                  halfway

Your Model: LOAD Brings Back The Saved Copy
    [Documentation]    MODEL trains, SAVEs, trains on, and LOAD restores the saved weights bit for bit: the
    ...    SAVE and its reload without a power cycle, so a board on a serial line runs it too.
    [Tags]    model
    Start The Suite Model Board
    Run Training Steps    steps=1    batch=4
    Save Parameters
    Take Weight Snapshot
    Run Training Steps    steps=1    batch=4    seed=2
    Load Should Bring Back The Last Save
    Weights Should Be Unchanged


*** Keywords ***
Start The Suite Model Board
    [Documentation]    The paper's TL build at T=40 keeps 3,558 state words: a SAVE is 1,790 flash operations.
    Build Firmware For Suite Model    40    tl
    Start Board

Power Cut Should Keep The Previous Copy
    [Documentation]    Saves copies 1 (slot A) and 2 (slot B), trains on, cuts the supply at ``point`` of
    ...    the third SAVE, powers the board up again: it must run copy 2, bit for bit.
    [Arguments]    ${point}    ${when}
    Start The Suite Model Board
    Run Training Steps    steps=1    batch=4
    Save Should Write Slot    0    1
    Run Training Steps    steps=1    batch=4    seed=2
    Save Should Write Slot    1    2
    Take Weight Snapshot
    Run Training Steps    steps=1    batch=4    seed=3
    ${operation}=    Flash Operation Of Save    ${point}
    Cut Power At Flash Operation    ${operation}    ${when}
    Save Should Be Cut Off
    Power Cycle Board
    Board Should Have Booted From    slot B
    Weights Should Be Unchanged
