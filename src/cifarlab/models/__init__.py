"""The model zoo: CIFAR-10 classifiers selected by ``conf/model/*.yaml`` (``model=airbench``)."""
from cifarlab.models.airbench import AirbenchNet
from cifarlab.models.custom_resnet import CustomResNet
from cifarlab.models.resnet18 import ResNet18

__all__ = ["AirbenchNet", "CustomResNet", "ResNet18"]
