"""The spec tests' shared helpers assert too; let pytest explain their failures."""

import pytest

pytest.register_assert_rewrite("spec_corpus")
