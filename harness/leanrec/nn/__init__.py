"""Shared neural building blocks: the fused field embedding, MLPs, interaction layers and the CTRModel base."""
from leanrec.nn.embedding import FieldEmbedding, FieldSpec
from leanrec.nn.interactions import (CIN, BilinearInteraction, CrossNetV2, FieldPairWeights, InnerProduct,
                                     InteractionAggregation, MultiHeadSelfAttention, SENet, pair_positions)
from leanrec.nn.layers import MLP, Dropout, FactorizationMachine, field_columns
from leanrec.nn.model import CTRModel, Features

__all__ = ["FieldEmbedding", "FieldSpec", "MLP", "Dropout", "FactorizationMachine", "field_columns", "CTRModel", "Features",
           "InnerProduct", "FieldPairWeights", "CIN", "CrossNetV2", "MultiHeadSelfAttention", "SENet",
           "BilinearInteraction", "InteractionAggregation", "pair_positions"]
